"""Command words; each module below is one command."""
