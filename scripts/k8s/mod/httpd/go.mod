module sealpack.local/httpd

go 1.26
