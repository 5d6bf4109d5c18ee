"""The scanners: which files pin reads, and the image references each kind of file names.

``result`` holds the neutral values every scanner returns, ``kinds`` picks the scanner for a
path; one module per YAML file kind says where images sit in it.
"""
