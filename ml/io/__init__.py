"""From raw detector frames and run records to the images the ml applications read."""
