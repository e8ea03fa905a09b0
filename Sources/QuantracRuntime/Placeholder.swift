enum _PlaceholderQuantracRuntime {}
