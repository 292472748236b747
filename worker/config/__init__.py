"""Configuration: the frozen settings object, loaded once from the environment."""
