"""The suite: its schema and loader, and the targets it names."""
