"""Model versions from training to `current`: the version folder (train_version), the gate, the retraining use case,
versions and rollback, drift, and publishing a rules document."""
