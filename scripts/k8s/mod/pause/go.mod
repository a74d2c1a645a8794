module sealpack.local/pause

go 1.26
