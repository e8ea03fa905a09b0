print("quantrac")
