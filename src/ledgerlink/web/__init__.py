"""The web app: sign-in, connections, the install wizard, Settings, the dashboard and the JSON API."""
