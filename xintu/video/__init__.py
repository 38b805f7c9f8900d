"""Video classification (DESIGN §4.9): keyframes through the image path, one answer."""
