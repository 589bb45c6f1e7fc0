"""Memory-based learners: policies that adapt in their activations, from the experience they read (RL²)."""
