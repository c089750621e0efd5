set terminal pngcairo size 1600,1100 font 'sans,11'
set output "bench/results/run-20261130-075051/chart.png"
set datafile separator "\t"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set grid ytics
set xtics rotate by -25 scale 0 font ',10'
set multiplot layout 2,1 title "Proxy throughput and CPU cost (median of repeats)"
set ylabel "% of direct throughput"
set yrange [0:*]
set arrow 1 from graph 0, first 100 to graph 1, first 100 nohead dashtype 2 linecolor rgb "#555555"
plot "bench/results/run-20261130-075051/chart.dat" using 2:xtic(1) title "handoff", \
     "bench/results/run-20261130-075051/chart.dat" using 3:xtic(1) title "haproxy", \
     "bench/results/run-20261130-075051/chart.dat" using 4:xtic(1) title "nginx", \
     "bench/results/run-20261130-075051/chart.dat" using 5:xtic(1) title "caddy"
unset arrow 1
set ylabel "proxy CPU seconds per 10k ops (per GiB for L4)"
set logscale y
set yrange [*:*]
plot "bench/results/run-20261130-075051/chart.dat" using 6:xtic(1) title "handoff", \
     "bench/results/run-20261130-075051/chart.dat" using 7:xtic(1) title "haproxy", \
     "bench/results/run-20261130-075051/chart.dat" using 8:xtic(1) title "nginx", \
     "bench/results/run-20261130-075051/chart.dat" using 9:xtic(1) title "caddy"
unset multiplot
