"""Monocular dynamic scenes: the ``iphone`` dataparser (DyCheck iPhone layout + Shape of Motion
priors), its lazily loading dataset, writers of the layout and custom-video preprocessing."""
