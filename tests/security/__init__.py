"""Attack suite (issue 11): each attack performed for real against a real broker / app / browser."""
