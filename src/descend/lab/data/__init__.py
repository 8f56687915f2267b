"""Datasets for the lab's tasks: the IDX reader, MNIST (shipped sample or full IDX files),
the MNIST-1D generator, and deterministic train / validation / test splitting."""
