set terminal pngcairo size 1400,1000 font 'sans,11'
set output "bench/results/reference/soak-10m/soak.png"
set datafile separator "\t"
set datafile missing "-"
set grid
set key off
set xlabel "seconds"
set object 1 rectangle from 8.0, graph 0 to 608.0, graph 1 behind fillcolor rgb '#eeeeff' fillstyle solid noborder
set multiplot layout 3,1 title "Soak: handoff, 10m0s mixed load (shaded: load)"
set ylabel "RSS (MiB)"
plot "bench/results/reference/soak-10m/soak.dat" using 1:2 with lines lw 2
set ylabel "goroutines"
plot "bench/results/reference/soak-10m/soak.dat" using 1:3 with lines lw 2
set ylabel "open fds"
plot "bench/results/reference/soak-10m/soak.dat" using 1:4 with lines lw 2
unset multiplot
