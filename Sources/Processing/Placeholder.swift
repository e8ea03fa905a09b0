enum _PlaceholderProcessing {}
