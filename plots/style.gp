# style.gp - the look of every figure attnbench plots: palette, font, line styles,
# terminals, grid, border and tics, the heatmap palette, and the styles of references,
# fronts and marks. `attnbench plot` copies this file beside the figures of a run
# (plots/<run>/style.gp), after a header with the run's formats and width and before a
# line style per variant of the run; every figure's script loads that copy. Edit this file
# to restyle every future figure; edit the copy to restyle one run's.

# the font, and its size in points: attnbench reads `fontsize = N` from this file to lay
# out legends and margins (text widths are those of DejaVu Sans, which "Sans" is on
# Debian); the resolution of PNG figures
font = "Sans"
fontsize = 8
dpi = 300

# terminal(format, width in, height in): the 'set terminal' command to eval.
# Cairo sizes text as if at 96 dpi and draws lw 1 half a point wide: these scales
# make 8 pt text 8 pt in the PDF and the PNG the same picture at 'dpi'.
term_pdf(w, h) = sprintf('set terminal pdfcairo enhanced color size %gin,%gin font "%s,%g" fontscale 0.75 linewidth 1', w, h, font, fontsize)
term_png(w, h) = sprintf('set terminal pngcairo enhanced color size %d,%d font "%s,%g" fontscale %g linewidth %g pointscale %g', int(w * dpi), int(h * dpi), font, fontsize, dpi / 96.0, dpi / 144.0, dpi / 72.0)
term_svg(w, h) = sprintf('set terminal svg enhanced size %d,%d font "%s,%g" linewidth 0.5 background "white"', int(w * 72), int(h * 72), font, fontsize)
terminal(fmt, w, h) = fmt eq "pdf" ? term_pdf(w, h) : fmt eq "png" ? term_png(w, h) : term_svg(w, h)

set border 3 lw 1
set tics nomirror out scale 0.6
set grid lc rgb "#dddddd" lw 1 dt 1
# legends are drawn by each script in a band of their own above the panels
unset key
set errorbars small
set pointsize 0.8
set style textbox opaque noborder
# accuracy heatmaps: viridis (sequential, colour-blind-safe), 0..1
set palette defined (0 "#440154", 0.25 "#3B528B", 0.5 "#21908C", 0.75 "#5DC863", 1 "#FDE725")

# One line style per variant, numbered by its index in the registry + 1, so a variant has
# the same colour, point type and dash in every figure: Okabe & Ito's colour-blind-safe
# palette, black last; filled and open point types in turn, so that a variant drawn over
# another with the same values (two exact variants) still shows both marks; past the
# palette's end colours repeat with the next point type and a dashed line.
array palette[8] = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
array point_types[8] = [7, 4, 9, 6, 13, 8, 5, 12]
variant_lw = 1.5
# variant_style(n): the 'set style line n' command of the variant with style number n
variant_style(n) = sprintf('set style line %d lc rgb "%s" pt %d lw %g dt %d', n, \
	palette[(n - 1) % |palette| + 1], \
	point_types[((n - 1) + (n - 1) / |palette|) % |point_types| + 1], \
	variant_lw, 1 + (n - 1) / |palette|)

# Colours and line styles that are not variants; the figures refer to them by these names.
colour_reference = "#555555"	# chance, 1x and other references; "none" in efficiency
colour_front = "#222222"	# Pareto fronts; intervals of efficiency lengths
colour_bar = "#aaaaaa"		# the legend's sample of a bar of any variant
colour_roof = "#444444"		# the roofline: the machine's compute and memory roofs
ls_reference = 100
ls_front = 101
ls_mark = 102
ls_below = 103
ls_unstable = 104
ls_roof = 105
ls_leader = 106
set style line ls_reference lc rgb colour_reference lw 1.5 dt 2	# chance, 1x and other references
set style line ls_front lc rgb colour_front lw 1.5 dt 1	# Pareto front
set style line ls_mark lc rgb "#000000" pt 12 ps 1.1 lw 1.5	# CAB's fitted crossing
# an efficiency length below the measured range: an arrow to smaller lengths
set style line ls_below lc rgb "#000000" lw 2
set style line ls_unstable lc rgb "#000000" pt 6 ps 2.2 lw 1	# ring: an unstable cell
set style line ls_roof lc rgb colour_roof lw 2 dt 1	# the roofline's two roofs
set style line ls_leader lc rgb "#888888" lw 0.75	# from a point to its name set apart
