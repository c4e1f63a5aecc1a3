"""The volunteers' mobile web app, served by Knacka itself at /app/."""
