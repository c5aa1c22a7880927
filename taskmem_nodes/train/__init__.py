"""Training the memorization policy: data from the simulated world, vocabulary, and the training loops."""
