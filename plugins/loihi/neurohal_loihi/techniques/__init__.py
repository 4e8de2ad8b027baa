"""Loihi deployment techniques: core packing, classifier offload, early exit on the emulator,
re-costing of measured runs, and the ``neurohal optimize`` search built on them."""
