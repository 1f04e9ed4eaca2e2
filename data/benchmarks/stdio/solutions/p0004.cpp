#include <iostream>
#include <queue>
#include <string>
#include <vector>
int main() {
    int rows, cols;
    std::cin >> rows >> cols;
    std::vector<std::string> grid(rows);
    for (auto &row : grid) std::cin >> row;
    std::vector<std::vector<int>> dist(rows, std::vector<int>(cols, -1));
    std::queue<std::pair<int, int>> queue;
    if (grid[0][0] == '.') { dist[0][0] = 0; queue.push({0, 0}); }
    const int dr[] = {1, -1, 0, 0}, dc[] = {0, 0, 1, -1};
    while (!queue.empty()) {
        auto [r, c] = queue.front();
        queue.pop();
        for (int k = 0; k < 4; k++) {
            int nr = r + dr[k], nc = c + dc[k];
            if (nr >= 0 && nr < rows && nc >= 0 && nc < cols && grid[nr][nc] == '.' && dist[nr][nc] < 0) {
                dist[nr][nc] = dist[r][c] + 1;
                queue.push({nr, nc});
            }
        }
    }
    std::cout << dist[rows - 1][cols - 1] << "\n";
}
