// Workspaces: containment of client paths by real path (no "..", "%2e%2e", "%2F", "%00" or
// symlink way out), index updates only from inside the folders, and removing a folder in
// the middle of its pass without waiting for it.
#include "agent/workspaces.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>

#include "agent/documents.h"
#include "tests/index/temp_workspace.h"

namespace latent::agent {
namespace {

using index::testing::cat;
using index::testing::TempDir;
namespace fs = std::filesystem;

Settings with_db(const std::string& db) {
    Settings s;
    s.index_db = db;
    return s;
}

TEST(PathWithin, ComparesWholeComponents) {
    EXPECT_TRUE(path_within("/ws", "/ws/a.py"));
    EXPECT_TRUE(path_within("/ws", "/ws"));
    EXPECT_FALSE(path_within("/ws", "/ws2/a.py"));
    EXPECT_FALSE(path_within("/ws", "/w"));
    EXPECT_TRUE(path_within("/", "/x"));
    EXPECT_FALSE(path_within("", "/x"));
}

TEST(Workspaces, ResolveKeepsClientPathsInsideTheFolders) {
    TempDir ws, outside;
    ws.write("src/in.py", "def inside(): pass\n");
    outside.write("secret.py", "def secret(): pass\n");
    fs::create_directory_symlink(outside.path(), ws / "link");
    Workspaces w({});
    w.set_folders({path_to_uri(ws.path())});
    const std::string root = real_path(ws.path());
    EXPECT_EQ(w.resolve(path_to_uri(ws / "src/in.py")), root + "/src/in.py");
    // A file not yet saved (or just deleted) in a folder that exists.
    EXPECT_EQ(w.resolve(path_to_uri(ws / "src/new.py")), root + "/src/new.py");
    const std::string out = outside / "secret.py";
    const std::string name = fs::path(outside.path()).filename().string();
    const std::string& w_path = ws.path();
    for (const std::string& uri : {
             cat({"file://", w_path, "/../", name, "/secret.py"}),      // ..
             cat({"file://", w_path, "/%2e%2e/", name, "/secret.py"}),  // %2e%2e
             cat({"file://", w_path, "%2F..%2F", name, "/secret.py"}),  // %2F
             cat({"file://", w_path, "/src/in.py%00"}),                 // %00
             path_to_uri(ws / "link/secret.py"),                        // a symlink out
             path_to_uri(out),                                          // plainly outside
             cat({"file://", w_path, "/src/../../", name, "/secret.py"}),
         }) {
        EXPECT_EQ(w.resolve(uri), "") << uri;
    }
    EXPECT_EQ(w.resolve("untitled:Untitled-1"), "");
}

TEST(Workspaces, RemovingAFolderMidPassReturnsAtOnceAndStopsThePass) {
    TempDir ws, db;
    for (int i = 0; i < 400; ++i)
        ws.write(cat({"m", std::to_string(i), ".py"}),
                 cat({"def f", std::to_string(i), "(): pass\n"}));
    // The pass blocks in its first progress report until the test lets it go: a
    // remove_folder() that waited for the pass would never return.
    std::promise<void> reported, release;
    auto released = release.get_future().share();
    std::atomic<bool> once{false};
    std::atomic<size_t> last_done{0}, total{0};
    WorkspacesOptions o;
    o.report = [&](const std::string&) {
        IndexReport r;
        r.progress = [&, released](size_t done, size_t t) {
            last_done = done;
            total = t;
            if (!once.exchange(true)) {
                reported.set_value();
                released.wait();
            }
        };
        return r;
    };
    auto w = std::make_unique<Workspaces>(o);
    Settings s = with_db(db / "i.sqlite");
    w->set_settings(s);
    w->set_folders({path_to_uri(ws.path())});
    w->start_indexing();
    reported.get_future().wait();  // the pass is in the middle
    auto removed = std::async(std::launch::async, [&] {
        w->remove_folder(path_to_uri(ws.path()));
        return w->stats();
    });
    // A hang detector, not a timing: remove_folder must not wait for the blocked pass.
    ASSERT_EQ(removed.wait_for(std::chrono::seconds(30)), std::future_status::ready);
    EXPECT_TRUE(removed.get().empty());
    EXPECT_TRUE(w->folders().empty());
    release.set_value();
    w.reset();  // joins the cancelled pass
    EXPECT_LT(last_done.load(), total.load()) << "the removed folder was indexed to the end";
}

}  // namespace
}  // namespace latent::agent
