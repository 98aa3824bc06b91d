"""Training methods: software training, calibration, in-situ training, defect-aware retraining..."""
