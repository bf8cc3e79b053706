"""Training a model version: replay through the serve fold, interactions, segments and their names, the
recommender data and neighbours, the validation search, ONNX graphs and their parity check, artifacts, privacy."""
