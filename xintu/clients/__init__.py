"""Clients of the classification API: the ``xintu classify`` folder sorter."""
