vcl 4.1;
# Varnish with its built-in VCL in front of the suite's origin.
backend origin { .host = "127.0.0.1"; .port = "8000"; }
