"""Files: exposure FITS, embedded ASDF, associations, reference files and their selection."""
