"""Plain reinforcement learners (no meta-learning): the batched PPO that trains baselines and memory learners."""
