// SPDX-License-Identifier: MIT
// The demos' charts as standalone SVG: two panels of one measure each per format (formats in
// the order given, by bits per value in the demos), one line per method (RTN, GPTQ, ED).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace chart {

/// One format and method: its two measures (the left panel's, the right panel's).
struct row {
  std::string format, method;
  double bits;
  double left, right;
};

/// A panel: its title, its axis, and a dashed reference line (NAN: none).
struct panel_spec {
  std::string title;
  bool log_axis;
  double reference;
};

namespace detail {
inline std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

// One panel: x = format index, y = value(row) on a linear or log10 axis.
template <class Value>
void panel(std::ostringstream& s, double left, const std::vector<std::string>& formats, const std::vector<row>& rows,
           const std::map<std::string, const char*>& colors, const panel_spec& spec, Value value) {
  const bool log_axis = spec.log_axis;
  const double reference = log_axis && !std::isnan(spec.reference) ? std::log10(spec.reference) : spec.reference;
  const std::string& title = spec.title;
  const double top = 50, width = 380, height = 250;
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& r : rows) {
    const double v = log_axis ? std::log10(std::max(value(r), 1e-12)) : value(r);
    lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (!std::isnan(reference)) lo = std::min(lo, reference), hi = std::max(hi, reference);
  // ticks at round values: decades on the log axis, 1/2/5 x 10^k steps on the linear one
  double step = 1;
  if (!log_axis) {
    const double raw = std::max((hi - lo) / 5, 0.01), decade = std::pow(10.0, std::floor(std::log10(raw)));
    step = raw <= decade ? decade : raw <= 2 * decade ? 2 * decade : raw <= 5 * decade ? 5 * decade : 10 * decade;
  }
  lo = std::floor(lo / step) * step, hi = std::ceil(hi / step) * step;
  if (hi <= lo) hi = lo + step;
  auto x = [&](std::size_t i) { return left + width * (static_cast<double>(i) + 0.5) / static_cast<double>(formats.size()); };
  auto y = [&](double v) { return top + height * (hi - v) / (hi - lo); };
  s << "<text x='" << num(left + width / 2) << "' y='30' text-anchor='middle' font-weight='bold'>" << title << "</text>\n";
  s << "<rect x='" << num(left) << "' y='" << num(top) << "' width='" << num(width) << "' height='" << num(height)
    << "' fill='none' stroke='#444'/>\n";
  const int ticks = static_cast<int>(std::lround((hi - lo) / step));
  for (int t = 0; t <= ticks; ++t) {
    const double v = lo + step * t;
    char label[32];
    if (log_axis) std::snprintf(label, sizeof label, "1e%d", static_cast<int>(std::lround(v)));
    else std::snprintf(label, sizeof label, "%.*f", step >= 1 ? 0 : step >= 0.1 ? 1 : 2, v);
    s << "<line x1='" << num(left) << "' x2='" << num(left + width) << "' y1='" << num(y(v)) << "' y2='" << num(y(v))
      << "' stroke='#ddd'/>\n<text x='" << num(left - 6) << "' y='" << num(y(v) + 4) << "' text-anchor='end' font-size='11'>"
      << label << "</text>\n";
  }
  for (std::size_t i = 0; i < formats.size(); ++i) {
    double bits = 0;
    for (const auto& r : rows)
      if (r.format == formats[i]) bits = r.bits;
    const auto cut = formats[i].find('_');  // "mxfp6_e3m2" on two lines
    const std::string lines[] = {formats[i].substr(0, cut), cut == std::string::npos ? "" : formats[i].substr(cut + 1)};
    for (int k = 0; k < 2; ++k)
      s << "<text x='" << num(x(i)) << "' y='" << num(top + height + 15 + 12 * k)
        << "' text-anchor='middle' font-size='10'>" << lines[k] << "</text>\n";
    s << "<text x='" << num(x(i)) << "' y='" << num(top + height + 40) << "' text-anchor='middle' font-size='10' fill='#666'>"
      << bits << " b</text>\n";
  }
  if (!std::isnan(reference))
    s << "<line x1='" << num(left) << "' x2='" << num(left + width) << "' y1='" << num(y(reference)) << "' y2='"
      << num(y(reference)) << "' stroke='#000' stroke-dasharray='4 3'/>\n<text x='" << num(left + width - 4) << "' y='"
      << num(y(reference) - 4) << "' text-anchor='end' font-size='10'>float</text>\n";
  for (const auto& [method, color] : colors) {
    std::string points;
    for (std::size_t i = 0; i < formats.size(); ++i)
      for (const auto& r : rows)
        if (r.format == formats[i] && r.method == method) {
          const double v = log_axis ? std::log10(std::max(value(r), 1e-12)) : value(r);
          points += num(x(i)) + "," + num(y(v)) + " ";
          s << "<circle cx='" << num(x(i)) << "' cy='" << num(y(v)) << "' r='3' fill='" << color << "'/>\n";
        }
    if (!points.empty()) s << "<polyline points='" << points << "' fill='none' stroke='" << color << "' stroke-width='2'/>\n";
  }
}
}  // namespace detail

/// Writes the chart; formats appear in the order of `rows`.
inline void write(const std::string& path, const std::vector<row>& rows, const panel_spec& left, const panel_spec& right) {
  std::vector<std::string> formats;
  for (const auto& r : rows)
    if (std::find(formats.begin(), formats.end(), r.format) == formats.end()) formats.push_back(r.format);
  const std::map<std::string, const char*> colors{{"rtn", "#888888"}, {"gptq", "#1f77b4"}, {"ed", "#d62728"}};
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='900' height='380' font-family='sans-serif' font-size='12'>\n"
    << "<rect width='900' height='380' fill='white'/>\n";
  detail::panel(s, 60, formats, rows, colors, left, [](const row& r) { return r.left; });
  detail::panel(s, 500, formats, rows, colors, right, [](const row& r) { return r.right; });
  double lx = 330;
  for (const auto& [method, color] : colors) {
    s << "<rect x='" << detail::num(lx) << "' y='362' width='14' height='4' fill='" << color << "'/><text x='"
      << detail::num(lx + 18) << "' y='368'>" << method << "</text>\n";
    lx += 80;
  }
  s << "</svg>\n";
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << s.str();
    if (!out.flush()) throw std::runtime_error(path + ": cannot write");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(path + ": cannot rename into place");
}

}  // namespace chart
