module corio.local/benchmarks/go

go 1.19
