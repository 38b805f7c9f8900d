"""Image validation, decoding, EXIF and hashing: no web, no database."""
