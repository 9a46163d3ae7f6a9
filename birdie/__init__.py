"""birdie: reward-driven automated curricula for language-model pretraining."""
