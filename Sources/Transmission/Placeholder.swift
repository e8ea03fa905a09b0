enum _PlaceholderTransmission {}
