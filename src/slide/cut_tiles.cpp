#include "slide/cut_tiles.h"

#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "data/png_encode.h"
#include "slide/geojson.h"
#include "slide/slide_file.h"
#include "slide/tile_grid.h"
#include "util/csv.h"
#include "util/display_text.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/progress.h"

namespace histotrain {

namespace fs = std::filesystem;

namespace {


struct SlideEntry {
  std::string patient, label;
};

// slide,patient,label rows, by the slide's file name and by its stem.
std::map<std::string, SlideEntry> read_slides_csv(const std::string& path) {
  const std::string source = "slides file '" + path + "'";
  const auto records = parse_csv(csv_text_for_reading(read_regular_file(path, uint64_t{64} << 20), source), source);
  if (records.empty()) throw Error(source + " is empty");
  const auto& header = records.front().fields;
  const auto column = [&](const char* name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) throw Error(source + " needs the columns slide,patient,label");
    return static_cast<size_t>(it - header.begin());
  };
  const size_t slide = column("slide"), patient = column("patient"), label = column("label");
  std::map<std::string, SlideEntry> entries;
  for (size_t r = 1; r < records.size(); ++r) {
    const auto& f = records[r].fields;
    if (f.size() <= std::max({slide, patient, label}) || f[label].empty())
      throw Error(source + ", line " + std::to_string(records[r].line) + ": a slide, a patient and a label are needed");
    entries[fs::path(f[slide]).filename().string()] = {f[patient], f[label]};
    entries[fs::path(f[slide]).stem().string()] = {f[patient], f[label]};
  }
  return entries;
}

// The GeoJSON of a slide: the file given, or SLIDE.geojson (by stem, then by file name) in the folder given.
std::string annotations_of(const CutOptions& o, const fs::path& slide, size_t slides) {
  if (o.annotations.empty()) return "";
  if (!fs::is_directory(o.annotations)) {
    if (slides > 1) throw UsageError("--annotations FILE is one slide's: give a folder of SLIDE.geojson for several");
    return o.annotations;
  }
  for (const fs::path& candidate : {fs::path(o.annotations) / (slide.stem().string() + ".geojson"),
                                    fs::path(o.annotations) / (slide.filename().string() + ".geojson")})
    if (fs::exists(candidate)) return candidate.string();
  return "";
}

// The label of a tile: the region covering most of it, when that covers at least the overlap.
std::string label_of_tile(const Annotations& annotations, const SlideTile& t, int64_t side, double min_overlap) {
  const Box box{static_cast<double>(t.x), static_cast<double>(t.y), static_cast<double>(t.x + side),
                static_cast<double>(t.y + side)};
  double best = 0;
  std::string label;
  for (const auto& region : annotations.regions) {
    const double c = coverage(region.polygon, box);
    if (c > best) {
      best = c;
      label = region.label;
    }
  }
  return best >= min_overlap ? label : "";
}

struct TileRow {
  std::string path, label;
  int64_t x = 0, y = 0;
};

class Cutter {
 public:
  Cutter(const CutOptions& o, size_t slides) : o_(o), slides_(slides) {
    if (!o.slides_csv.empty()) csv_ = read_slides_csv(o.slides_csv);
  }

  // Cuts one slide's tiles; its rows go to the manifest.
  void cut(const std::string& path) {
    const fs::path slide_path(path);
    SlideFile slide(path, o_.slide_mpp);
    std::string name = safe_name(slide_path.stem().string());
    if (used_names_[name]++ > 0) name += "-" + std::to_string(used_names_[name]);  // a.svs in two folders
    const TileGeometry g = tile_geometry(slide, o_.tile_px, o_.mpp);
    double downsample = 1;
    const RgbImage thumbnail = slide.thumbnail(thumbnail_side(slide, g.side0), downsample);
    const TissueMask mask = detect_tissue(thumbnail, downsample);
    std::vector<SlideTile> tiles = tissue_tiles(mask, slide.width(), slide.height(), g.side0, o_.min_tissue);
    const auto [labels, group] = labels_of(slide, slide_path, name, tiles, g.side0);
    const fs::path folder = fs::path(o_.out) / name;
    ensure_own_subfolder(folder);
    write_file_atomically(folder / "tissue.png", encode_png(tissue_picture(thumbnail, mask)));
    if (tiles.empty()) throw Error("no tissue found (" + (folder / "tissue.png").string() + " shows what was taken for tissue)");
    if (std::all_of(labels.begin(), labels.end(), [](const std::string& l) { return l.empty(); }))
      throw Error("no tissue tile took a label: the regions cover too little of any tile (--min-label-overlap), or "
                  "none lies on tissue (--background-label labels the rest)");
    std::vector<TileRow> rows(tiles.size());
    Progress progress("slide " + printable(slide_path.filename().string()), static_cast<int64_t>(tiles.size()),
                      "tiles", o_.quiet);
    std::atomic<int64_t> done{0};
    tbb::parallel_for(size_t{0}, tiles.size(), [&](size_t i) {
      if (labels[i].empty()) return;
      const std::string file = name + "_" + std::to_string(tiles[i].x) + "_" + std::to_string(tiles[i].y) + ".png";
      write_file_atomically(folder / file, encode_png(read_tile(slide, g, tiles[i].x, tiles[i].y)));
      rows[i] = {name + "/" + file, labels[i], tiles[i].x, tiles[i].y};
      progress.update(++done);
    });
    progress.finish();
    for (const auto& row : rows) {
      if (row.path.empty()) continue;
      manifest_ += csv_field(row.path) + "," + csv_field(row.label) + "," + csv_field(group) + "," +
                   csv_field(slide_path.filename().string()) + "," + std::to_string(row.x) + "," +
                   std::to_string(row.y) + "," + (g.mpp > 0 ? std::to_string(g.mpp) : std::string()) + "\n";
      ++tiles_;
    }
    write_file_atomically(fs::path(o_.out) / "manifest.csv", "path,label,group,slide,x,y,mpp\n" + manifest_);
  }

  int64_t tiles() const { return tiles_; }

 private:
  // Per tile its label ("" to skip), and the slide's group: its patient, else the slide (by its
  // folder's name, unique in this run).
  std::pair<std::vector<std::string>, std::string> labels_of(const SlideFile& slide, const fs::path& path,
                                                             const std::string& name, const std::vector<SlideTile>& tiles,
                                                             int64_t side) {
    std::vector<std::string> labels(tiles.size());
    std::string group = name;
    if (!csv_.empty()) {
      const auto it = csv_.count(path.filename().string()) ? csv_.find(path.filename().string())
                                                           : csv_.find(path.stem().string());
      if (it == csv_.end()) throw Error("--slides names no label for this slide");
      if (!it->second.patient.empty()) group = it->second.patient;
      std::fill(labels.begin(), labels.end(), it->second.label);
      return {labels, group};
    }
    const std::string file = annotations_of(o_, path, slides_);
    if (file.empty()) throw Error("no annotations for this slide (--annotations, or --slides with its label)");
    Annotations annotations = read_annotations(file, static_cast<double>(slide.width()), static_cast<double>(slide.height()));
    keep_wanted_labels(annotations);
    if (!o_.quiet) std::fprintf(stderr, "%s: %s\n", printable(file).c_str(), printable(annotations.describe()).c_str());
    for (size_t i = 0; i < tiles.size(); ++i) {
      labels[i] = label_of_tile(annotations, tiles[i], side, o_.min_label_overlap);
      if (labels[i].empty()) labels[i] = o_.background_label;
    }
    return {labels, group};
  }

  void keep_wanted_labels(Annotations& a) const {
    if (o_.labels.empty()) return;
    std::vector<Annotation> kept;
    for (auto& region : a.regions) {
      if (o_.labels.count(region.label))
        kept.push_back(std::move(region));
      else
        ++a.skipped["a classification not among --labels ('" + region.label + "')"];
    }
    a.regions = std::move(kept);
  }

  const CutOptions& o_;
  size_t slides_;
  std::map<std::string, SlideEntry> csv_;
  std::map<std::string, int> used_names_;
  std::string manifest_;
  int64_t tiles_ = 0;
};

}  // namespace

CutReport cut_tiles(const std::vector<std::string>& slides, const CutOptions& o) {
  if (!(o.min_tissue >= 0 && o.min_tissue <= 1) || !(o.min_label_overlap > 0 && o.min_label_overlap <= 1))
    throw UsageError("--min-tissue must be in [0, 1] and --min-label-overlap in (0, 1]");
  if (o.annotations.empty() == o.slides_csv.empty())
    throw UsageError("tile needs --annotations (QuPath GeoJSON) or --slides (slide,patient,label), one of them");
  ensure_writable_dir(o.out);
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  Cutter cutter(o, slides.size());
  CutReport report;
  for (const auto& slide : slides) {
    try {
      cutter.cut(slide);
    } catch (const Error& e) {
      report.failed.push_back(printable(slide) + ": " + e.what());
      std::fprintf(stderr, "skipped %s: %s\n", printable(slide).c_str(), e.what());
    }
  }
  report.tiles = cutter.tiles();
  report.manifest = (fs::path(o.out) / "manifest.csv").string();
  return report;
}

}  // namespace histotrain
