"""Device-independent deployment techniques: the smallest T meeting an accuracy target, the
early-exit rule, threshold scaling and activity-aware calibration, and the resumable Pareto
search. Device-specific ones (the loihi plugin's core packing, classifier offload and
``neurohal optimize``) live in their plugins."""
