enum _PlaceholderAcquisition {}
