#include "terse/core/remove_tree.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("terse_remove_tree_" + name + "_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

void touch(const fs::path& p) { std::ofstream(p) << "x"; }

TEST(RemoveTree, RemovesNestedDirectoriesAndFiles) {
  const fs::path d = fresh_dir("nested");
  fs::create_directories(d / "a" / "b" / "c");
  touch(d / "f");
  touch(d / "a" / "g");
  touch(d / "a" / "b" / "c" / "h");
  std::string why;
  ASSERT_TRUE(terse::remove_tree(d.string(), &why)) << why;
  EXPECT_FALSE(fs::exists(d));
}

TEST(RemoveTree, RemovesAFileAndAcceptsAMissingPath) {
  const fs::path d = fresh_dir("file");
  touch(d / "f");
  EXPECT_TRUE(terse::remove_tree((d / "f").string()));
  EXPECT_FALSE(fs::exists(d / "f"));
  EXPECT_TRUE(terse::remove_tree((d / "missing" / "deeper").string()));
  EXPECT_TRUE(terse::remove_tree(d.string()));
}

TEST(RemoveTree, RemovesLinksWithoutFollowingThem) {
  const fs::path keep = fresh_dir("keep");
  touch(keep / "precious");
  const fs::path d = fresh_dir("links");
  fs::create_directory_symlink(keep, d / "to_keep");
  ASSERT_TRUE(terse::remove_tree(d.string()));
  EXPECT_FALSE(fs::exists(d));
  EXPECT_TRUE(fs::exists(keep / "precious"));  // the link's target is untouched
  ASSERT_TRUE(terse::remove_tree(keep.string()));
}

TEST(RemoveTree, ReportsWhatItCouldNotRemove) {
  // A path through a regular file cannot be a directory: lstat fails with ENOTDIR.
  const fs::path d = fresh_dir("bad");
  touch(d / "f");
  std::string why;
  EXPECT_FALSE(terse::remove_tree((d / "f" / "x").string(), &why));
  EXPECT_NE(why.find("f/x"), std::string::npos) << why;
  EXPECT_NE(why.find("Not a directory"), std::string::npos) << why;
  ASSERT_TRUE(terse::remove_tree(d.string()));
}

}  // namespace
