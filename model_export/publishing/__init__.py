"""Model versions from training to `current`: the version folder, the gate, the retraining use case, rollback."""
