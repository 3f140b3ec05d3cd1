"""What runs on a server host (MariaDB, the web service), and the one runner of all processes."""
