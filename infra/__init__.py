"""What deploys and what runs the stack locally."""
