"""The history store's kinds and columns (tardis.dev CSV schemas where they exist)."""
