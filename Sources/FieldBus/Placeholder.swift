enum _PlaceholderFieldBus {}
