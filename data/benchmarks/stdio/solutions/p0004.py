from collections import deque

rows, cols = map(int, input().split())
grid = [input().strip() for _ in range(rows)]
dist = [[-1] * cols for _ in range(rows)]
if grid[0][0] == ".":
    dist[0][0] = 0
    queue = deque([(0, 0)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nr, nc = r + dr, c + dc
            if 0 <= nr < rows and 0 <= nc < cols and grid[nr][nc] == "." and dist[nr][nc] < 0:
                dist[nr][nc] = dist[r][c] + 1
                queue.append((nr, nc))
print(dist[rows - 1][cols - 1])
