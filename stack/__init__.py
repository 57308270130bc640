"""What an environment is: its config, the composition of the platform, and the offline render."""
