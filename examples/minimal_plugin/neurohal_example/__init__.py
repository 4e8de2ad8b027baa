"""A minimal third-party device plugin for neurohal (see README.md next to this package)."""
