"""The exceptions neurohal raises. Each message says what is wrong and what to do about it."""


class NeurohalError(Exception):
    """Base class of every error neurohal raises on purpose."""


class IRValidationError(NeurohalError):
    """A graph breaks an IR rule; the message names the node and the reason."""


class IRFormatError(NeurohalError):
    """A model file (.nhir, .nir, artifact) cannot be read: truncated, corrupted, hostile or
    from a newer schema."""


class PluginError(NeurohalError):
    """A device plugin is missing, broken or misbehaving."""


class DeviceUnavailableError(NeurohalError):
    """The device cannot run here; the message carries the probe's reason."""


class UnsupportedGraphError(NeurohalError):
    """A device or converter cannot handle some nodes of a graph; the message lists them."""


class InputError(NeurohalError):
    """Inputs given to run or measure do not fit the graph (shape, dtype, NaN, timesteps)."""


class DatasetError(NeurohalError):
    """A dataset is missing or its files are malformed."""


class ZooError(NeurohalError):
    """An unknown or damaged model-zoo entry."""


class ConversionError(NeurohalError):
    """A model cannot be loaded or converted; the message names the node and the operator."""
