"""neural_processes package."""
