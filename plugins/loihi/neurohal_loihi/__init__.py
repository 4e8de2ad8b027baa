"""neurohal device plugin."""
