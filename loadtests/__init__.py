"""Load scenarios and the data they need."""
