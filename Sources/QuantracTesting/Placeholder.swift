enum _PlaceholderQuantracTesting {}
