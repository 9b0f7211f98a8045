"""Side-by-side speed comparisons (see README.md); scripts, not part of the kit."""
