"""The retraining job for AWS Glue: its entry script, and the build step that ships the project's code to it."""
