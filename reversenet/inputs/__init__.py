"""What goes in: photos, and networks (a model, its weights, its preprocessing)."""
