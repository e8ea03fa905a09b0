print("quantracd")
