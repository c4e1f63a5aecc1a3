"""The leads' map: progress choropleth, turfs, and assigning turfs from the map."""
